job "hello" {
  group "web" {
    count = "three"
    task "hello" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "command"
      }
    }
  }
}
