job "paths" {
  group "g" {
    volume "certs" {
      type   = "csi"
      source = "certs"
    }
    volume "logs" {
      type = "host"
    }
    task "module" {
      driver = "wasm"
      config {
        module = "reader@1.0.0"
        mode   = "command"
        mount {
          source = "/etc"
          target = "/etc"
        }
      }
      volume_mount {
        volume      = "cache"
        destination = "cache"
      }
    }
    task "container" {
      driver = "docker"
      config {
        image   = "alpine:3"
        volumes = ["/var/run/docker.sock:/var/run/docker.sock"]
      }
    }
  }
}
