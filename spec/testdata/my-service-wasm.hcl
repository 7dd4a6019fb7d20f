# The job from the seeds (DESIGN.md), with the wasm driver. DESIGN.md writes
# several arguments on one line (update { max_parallel = 1  stagger = "30s" });
# HCL allows one argument in a single-line block, so here each is on its own line.
job "my-service" {
  datacenters = ["us-west-1", "us-east-1"]

  update {
    max_parallel = 1
    stagger      = "30s"
  }

  group "webs" {
    count = 5

    task "frontend" {
      driver = "wasm"

      config {
        module = "web-frontend@1.4.2"
        mode   = "http"
      }

      restart {
        attempts = 2
        interval = "1m"
        delay    = "15s"
      }

      env {
        DB_HOST = "db01.example.com"
        DB_USER = "web"
      }

      service {
        tags = ["prod"]
        port = "http"

        check {
          type     = "http"
          path     = "/health"
          interval = "10s"
          timeout  = "2s"
        }
      }

      resources {
        cpu    = 500
        memory = 128

        network {
          port "http" {}
        }
      }
    }
  }
}
