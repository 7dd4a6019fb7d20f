job "web" {
  update {
    healthy_deadline  = "5m"
    progress_deadline = "1m"
    health_check      = "manual"
  }
  group "g" {
    shutdown_delay = "-1s"
    update {
      health_check = "logs"
    }
    task "t" {
      driver = "wasm"
      config {
        module = "web@1.0.0"
        mode   = "http"
      }
      resources {
        network {
          port "http" {}
        }
      }
      service {
        port        = "http"
        canary_tags = []
      }
    }
  }
}
