job "nginx" {
  group "proxy" {
    network {
      port "http" {
        static = 8080
        to     = 80
      }
    }
    task "nginx" {
      driver = "docker"
      config {
        image = "nginx:1.27"
        ports = ["http"]
        args  = ["-g", "daemon off;"]
      }
    }
  }
}
