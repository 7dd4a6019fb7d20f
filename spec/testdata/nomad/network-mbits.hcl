job "web" {
  group "web" {
    network {
      mbits = 10
      port "http" {
        to = 8080
      }
    }
    task "web" {
      driver = "docker"
      config {
        image = "nginx:1.27"
        ports = ["http"]
      }
    }
  }
}
