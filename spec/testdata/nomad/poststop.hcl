job "app" {
  group "app" {
    task "cleanup" {
      driver = "wasm"
      lifecycle {
        hook = "poststop"
      }
      config {
        module = "cleanup@1.0.0"
        mode   = "command"
      }
    }
    task "app" {
      driver = "wasm"
      config {
        module = "app@1.0.0"
        mode   = "command"
      }
    }
  }
}
