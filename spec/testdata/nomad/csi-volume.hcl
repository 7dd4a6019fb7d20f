job "db" {
  group "db" {
    volume "data" {
      type   = "csi"
      source = "pg"
    }
    task "db" {
      driver = "docker"
      config {
        image = "postgres:16"
      }
    }
  }
}
