job "db" {
  group "db" {
    task "db" {
      driver = "docker"
      config {
        image   = "postgres:16"
        volumes = ["/srv/pg:/var/lib/postgresql/data"]
      }
    }
  }
}
