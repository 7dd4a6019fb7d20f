# A rolling update of the hello module, Nomad's way. Run it, change
# HELLO_VERSION (or the module version), `strata plan` it, then run it
# again: one new instance at a time starts beside the old ones, becomes
# healthy (its /health check passing for 5s), and only then replaces one.
# Set HEALTHY = "false" to see a bad version rolled back automatically.
variable "version" {
  type    = string
  default = "v1"
}

variable "healthy" {
  type    = string
  default = "true"
}

job "hello-deploy" {
  update {
    max_parallel      = 1
    min_healthy_time  = "5s"
    healthy_deadline  = "1m"
    progress_deadline = "2m"
    stagger           = "1s"
    auto_revert       = true
  }

  group "web" {
    count          = 4
    shutdown_delay = "2s"

    task "hello" {
      driver = "wasm"

      config {
        module = "hello@0.1.0"
        mode   = "http"
      }

      env {
        HELLO_VERSION = var.version
        HEALTHY       = var.healthy
      }

      resources {
        cpu    = 100
        memory = 64
        network {
          port "http" {}
        }
      }

      service {
        port = "http"
        tags = ["web"]
        check {
          type     = "http"
          path     = "/health"
          interval = "1s"
          timeout  = "1s"
        }
      }
    }
  }
}
