job "hello" {
  group "web" {
    task "container" {
      driver = "docker"
      config {
        image  = "nginx:1.27"
        module = "hello@0.1.0"
      }
    }
    task "module" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "command"
        image  = "nginx:1.27"
      }
    }
    task "empty" {
      driver = "docker"
    }
  }
}
