job "hello" {
  group "web" {
    task "hello" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "http"
      }
      resources {
        cpu    = 100
        memory = 5
        network {
          port "http" {}
        }
      }
    }
  }
}
