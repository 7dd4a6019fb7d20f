job "redis" {
  group "cache" {
    network {
      port "db" {
        to = 6379
      }
    }
    service {
      name = "redis"
      port = "db"
      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }
    task "redis" {
      driver = "docker"
      config {
        image = "redis:7"
        ports = ["db"]
      }
      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
