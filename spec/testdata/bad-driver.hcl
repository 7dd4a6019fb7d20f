job "hello" {
  group "web" {
    task "vm" {
      driver = "qemu"
      config {
        image = "debian.qcow2"
      }
    }
  }
}
