# Only declared variables, no functions, whole numbers only.
job "hello" {
  priority = var.priority
  group "web" {
    count = 2.5
    task "hello" {
      driver = "docker"
      config {
        image = upper("nginx")
      }
      restart {
        attempts = 1
      }
      restart {
        attempts = 2
      }
    }
  }
}
