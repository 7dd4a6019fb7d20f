variable "count" {
  type = number
}

variable "count" {
  default = 1
}

variable "size" {
  type    = number
  default = "large"
}

variable "tags" {
  type    = list(strin)
  default = []
}

variable "image" {
  default     = "nginx"
  description = var.count
}

job "vars" {
  priority = var.prio
  group "web" {
    count = var.count
    task "proxy" {
      driver = "docker"
      config {
        image = var.image
      }
    }
  }
}
