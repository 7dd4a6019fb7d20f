# Variables: defaults here; -var and -var-file override them (see TestVars).
variable "image" {
  type        = string
  default     = "nginx"
  description = "the container image"
}

variable "tag" {
  default = "1.27"
}

variable "replicas" {
  type    = number
  default = 2
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "env" {
  type = map(string)
  default = {
    LOG_LEVEL = "info"
  }
}

variable "canary" {
  type    = bool
  default = false
}

job "web" {
  datacenters = var.datacenters

  group "proxy" {
    count = var.replicas

    update {
      canary = var.canary ? 1 : 0
    }

    network {
      port "http" {
        to = 80
      }
    }

    task "nginx" {
      driver = "docker"
      config {
        image = "${var.image}:${var.tag}"
        args  = ["--listen", "${STRATA_PORT_http}", "--workers=${var.replicas * 2}"]
        ports = ["http"]
      }
      env = var.env
      service {
        name = "web-${var.image}"
        port = "http"
      }
    }
  }
}
