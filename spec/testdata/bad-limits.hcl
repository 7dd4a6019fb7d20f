job "-web" {
  group "g" {
    count = 10000000
    task "t" {
      driver = "wasm"
      config {
        module = "web@1.0.0"
        mode   = "command"
      }
    }
  }
}
