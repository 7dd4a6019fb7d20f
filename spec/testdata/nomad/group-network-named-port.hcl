job "api" {
  group "api" {
    network {
      mode = "host"
      port "api" {}
      port "metrics" {}
    }
    service {
      name = "api"
      port = "api"
    }
    service {
      name = "api-metrics"
      port = "metrics"
    }
    task "api" {
      driver = "wasm"
      config {
        module = "api@2.1.0"
        mode   = "listener"
        port   = "api"
      }
      env {
        METRICS_ADDR = "${NOMAD_ADDR_metrics}"
      }
    }
  }
}
