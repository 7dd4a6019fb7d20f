job "ports" {
  group "web" {
    network {
      port "http" {
        static = 8080
      }
    }

    service {
      port = "metrics"
    }

    task "front" {
      driver = "wasm"
      config {
        module = "front@1.0.0"
        mode   = "http"
      }
      env {
        BACKEND = "${STRATA_ADDR_backend}"
      }
      resources {
        network {
          port "http" {}
          port "admin" {
            static = 8080
          }
        }
      }
    }

    task "proxy" {
      driver = "docker"
      config {
        image = "nginx:1.27"
        ports = ["http", "stats", "http"]
      }
      service {
        port = "admin"
      }
    }

    task "worker" {
      driver = "wasm"
      config {
        module           = "worker@1.0.0"
        mode             = "command"
        max_request_time = "5s"
      }
      resources {
        network {
          port "jobs" {}
        }
      }
      service {
        port = "jobs"
        check {
          type = "tcp"
        }
      }
    }
  }
}
