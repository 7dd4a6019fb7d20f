# System jobs run one copy on every eligible node.
job "agentd" {
  type = "system"

  affinity {
    attribute = "${node.class}"
    value     = "edge"
  }

  spread {
    attribute = "${node.datacenter}"
  }

  group "daemon" {
    count = 3

    reschedule {
      attempts = 1
      interval = "1h"
    }

    disconnect {
      stop_after = "5m"
    }

    task "run" {
      driver = "wasm"
      config {
        module = "agentd@1.0.0"
        mode   = "command"
      }
    }
  }
}
