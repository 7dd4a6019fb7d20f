job "one" {
  group "g" {
    task "t" {
      driver = "docker"
      config { image = "nginx" }
    }
  }
}

job "two" {
  group "g" {
    task "t" {
      driver = "docker"
      config { image = "nginx" }
    }
  }
}
