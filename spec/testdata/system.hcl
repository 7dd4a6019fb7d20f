# A system job: one copy on every node that satisfies the constraints.
job "node-exporter" {
  type = "system"

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  group "exporter" {
    disconnect {
      lost_after = "12h"
    }

    task "exporter" {
      driver = "wasm"
      config {
        module = "node-exporter@0.3.0"
        mode   = "listener"
      }
      resources {
        network {
          port "metrics" {
            static = 9100
          }
        }
      }
      service {
        port = "metrics"
        check {
          type = "tcp"
        }
      }
    }
  }
}
