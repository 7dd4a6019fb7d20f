job "gc" {
  type = "sysbatch"
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "gc@1.0.0"
        mode   = "command"
      }
    }
  }
}
