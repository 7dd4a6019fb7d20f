# A listener-mode module: one long-lived Go net/http server on the port the agent opens.
# Push the module first:  strata module push examples/server/server.wasm -name server -version 0.1.0
job "server" {
  group "web" {
    count = 1
    task "server" {
      driver = "wasm"
      config {
        module = "server@0.1.0"
        mode   = "listener"
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
        check {
          type     = "http"
          path     = "/healthz"
          interval = "5s"
          timeout  = "1s"
        }
      }
    }
  }
}
