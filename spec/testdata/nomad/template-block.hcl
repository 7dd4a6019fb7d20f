job "web" {
  group "web" {
    task "web" {
      driver = "docker"
      config {
        image = "nginx:1.27"
      }
      template {
        data        = "{{ key \"x\" }}"
        destination = "local/x.conf"
      }
    }
  }
}
