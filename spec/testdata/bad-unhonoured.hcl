# Nomad attributes Strata parses but does not implement: refused, each
# with a message saying so, rather than accepted and ignored.
job "edge" {
  group "web" {
    disconnect {
      lost_after = "1h"
      reconcile  = "best_score"
    }

    network {
      mbits = 10
      port "http" {}
    }

    task "hello" {
      driver = "wasm"
      config {
        module = "hello@1.0.0"
        mode   = "http"
      }
    }
  }

  group "api" {
    disconnect {
      lost_after = "1h"
      reconcile  = "longest_running"
    }

    task "api" {
      driver = "wasm"
      config {
        module = "hello@1.0.0"
        mode   = "command"
      }
      resources {
        network {
          mbits = 1
        }
      }
    }
  }
}
