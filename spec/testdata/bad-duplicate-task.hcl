job "hello" {
  group "web" {
    task "hello" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "command"
      }
    }
    task "hello" {
      driver = "docker"
      config {
        image = "nginx:1.27"
      }
    }
  }
}
