# The walking-skeleton example: one WAGI module answering "hello from <path>".
# Push the module first:  strata module push examples/hello/hello.wasm -name hello -version 0.1.0
job "hello" {
  group "web" {
    count = 1

    task "hello" {
      driver = "wasm"

      config {
        module = "hello@0.1.0"
        mode   = "http"
      }

      env {
        GREETING = "hello"
      }

      resources {
        cpu    = 100
        memory = 64
        network {
          port "http" {}
        }
      }

      # Registered as hello-web-hello.service.strata
      service {
        port = "http"
        tags = ["example"]
        check {
          type     = "http"
          path     = "/"
          interval = "5s"
          timeout  = "1s"
        }
      }
    }
  }
}
