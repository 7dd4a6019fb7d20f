job "nightly" {
  type = "sysbatch"
  group "work" {
    task "run" {
      driver = "wasm"
      config {
        module = "run@1.0.0"
        mode   = "command"
      }
    }
  }
}
