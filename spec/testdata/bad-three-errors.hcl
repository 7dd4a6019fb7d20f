job "hello" {
  group "web" {
    task "hello" {
      driver = "wasm"
      colour = "blue"
      config {
        module = "hello@0.1.0"
        mode   = "http"
      }
      restart {
        delay = "15 seconds"
      }
      resources {
        memory = 5
        network {
          port "http" {}
        }
      }
    }
  }
}
