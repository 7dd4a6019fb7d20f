job "db" {
  group "db" {
    volume "data" {
      type      = "host"
      source    = "pgdata"
      read_only = false
    }
    network {
      port "pg" {
        to = 5432
      }
    }
    task "postgres" {
      driver = "docker"
      config {
        image = "postgres:16"
        ports = ["pg"]
      }
      volume_mount {
        volume      = "data"
        destination = "/var/lib/postgresql/data"
      }
    }
  }
}
