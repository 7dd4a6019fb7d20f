job "svc" {
  group "svc" {
    network {
      port "http" {}
    }
    task "svc" {
      driver = "wasm"
      config {
        module = "svc@1.0.0"
        mode   = "listener"
      }
      service {
        port = "http"
        check {
          type     = "http"
          path     = "/healthz"
          interval = "5s"
          timeout  = "1s"
          check_restart {
            limit = 3
            grace = "10s"
          }
        }
      }
    }
  }
}
