job "hello" {
  group "web" {
    task "hello" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "http"
      }
      resources {
        network {
          port "http" {}
          port "http" {}
        }
      }
      service {
        port = "http"
        check {
          type = "http"
        }
        check {
          type     = "http"
          path     = "health"
          interval = "5s"
          timeout  = "10s"
        }
        check {
          type     = "grpc"
          interval = "100ms"
        }
        check {
          type = "tcp"
          check_restart {
            limit           = -1
            grace           = "-5s"
            ignore_warnings = true
          }
        }
      }
      restart {
        attempts = 10
        interval = "1m"
        delay    = "15s"
        mode     = "retry"
      }
    }
  }
}
