job "placed" {
  constraint {
    attribute = "${foo.bar}"
    value     = "x"
  }
  constraint {
    attribute = "attr.kernel.name"
    value     = "linux"
  }
  constraint {
    attribute = "${attr.kernel.name}"
    operator  = "~="
    value     = "linux"
  }
  constraint {
    attribute = "${node.name}"
    value     = "edge-1"
  }
  constraint {
    attribute = "${attr.os.name}"
  }

  affinity {
    attribute = "${node.datacenter}"
    value     = "dc1"
    weight    = 0
  }
  affinity {
    operator = "distinct_hosts"
  }

  spread {
    attribute = "${node.datacenter}"
    weight    = 150
    target "dc1" {
      percent = 80
    }
    target "dc1" {
      percent = 40
    }
  }

  group "web" {
    constraint {
      attribute = "${meta.rack}"
      operator  = "regexp"
      value     = "r[0-9"
    }
    constraint {
      attribute = "${attr.os.version}"
      operator  = "semver"
      value     = "~> 1.2"
    }
    constraint {
      attribute = "${attr.os.version}"
      operator  = "version"
      value     = ">= one"
    }
    constraint {
      attribute = "${node.unique.name}"
      operator  = "distinct_hosts"
    }
    constraint {
      attribute = "${meta.cached}"
      operator  = "set_contains"
      value     = "redis,,nginx"
    }
    constraint {
      attribute = "${meta.gpu}"
      operator  = "is_set"
      value     = "true"
    }
    constraint {
      attribute = "${attr.driver.wasm}"
      value     = "${STRATA_PORT_http}"
    }

    task "hello" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "command"
      }
    }
  }
}
