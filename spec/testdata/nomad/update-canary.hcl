job "web" {
  update {
    max_parallel     = 1
    canary           = 1
    min_healthy_time = "10s"
    healthy_deadline = "2m"
    auto_revert      = true
    auto_promote     = true
  }
  group "web" {
    count = 3
    network {
      port "http" {}
    }
    service {
      port        = "http"
      tags        = ["live"]
      canary_tags = ["canary"]
    }
    task "web" {
      driver = "wasm"
      config {
        module = "web@1.1.0"
        mode   = "http"
      }
    }
  }
}
