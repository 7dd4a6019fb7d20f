job "node-exporter" {
  type = "system"
  group "exporter" {
    network {
      port "metrics" {
        static = 9100
      }
    }
    task "exporter" {
      driver = "docker"
      config {
        image = "prom/node-exporter:v1.8.2"
        ports = ["metrics"]
      }
    }
  }
}
