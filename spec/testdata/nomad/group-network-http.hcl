# Nomad 0.12+ style: the port is the group's; the served task takes it.
job "web" {
  datacenters = ["dc1"]
  group "web" {
    count = 2
    network {
      port "http" {}
    }
    service {
      port = "http"
      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }
    task "app" {
      driver = "wasm"
      config {
        module = "web@1.0.0"
        mode   = "http"
      }
    }
  }
}
