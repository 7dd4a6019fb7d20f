# A job file holds variable blocks and one job block; Nomad's other
# top-level blocks do not belong.
locals {
  image = "nginx"
}

region = "eu"

job "web" {
  group "g" {
    task "t" {
      driver = "docker"
      config {
        image = "nginx"
      }
    }
  }
}
