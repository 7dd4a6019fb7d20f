job "my job" {
  priority = 0
  group "web" {
    task "hello" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "http"
      }
      resources {
        cpu = 0
        network {
          port "http" {}
        }
      }
      service {
        name = "Web_Frontend"
        port = "http"
      }
    }
  }
  group "web" {
    task "other" {
      driver = "docker"
      config {
        image = "nginx:1.27"
      }
    }
  }
}
