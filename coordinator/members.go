package coordinator

import (
	"context"
	"sync"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
)

// memberTimeout bounds how long members waits for a server to answer.
const memberTimeout = 2 * time.Second

// members lists the servers of the Raft configuration with whether each
// answers now (server RPC "info", asked of all at once): Nomad's `server
// members`, from this server's view.
func (c *cluster) members(ctx context.Context) (*structs.ServerMembers, error) {
	peers, err := c.node.peers()
	if err != nil {
		return nil, err
	}
	out := &structs.ServerMembers{ServerID: c.id, Members: make([]structs.ServerMember, len(peers))}
	self := c.node.addr()
	var wg sync.WaitGroup
	for i, p := range peers {
		m := &out.Members[i]
		*m = structs.ServerMember{ID: p.ID, RaftAddr: p.Address, Leader: p.Leader, Voter: p.Voter}
		if p.Address == self {
			info := c.info()
			m.Status, m.HTTPAddr, m.AgentAddr, m.LastIndex = structs.MemberAlive, info.HTTPAddr, info.AgentAddr, info.AppliedIndex
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, memberTimeout)
			defer cancel()
			var si ServerInfo
			if err := c.rpc.call(cctx, p.Address, "info", nil, &si); err != nil {
				m.Status, m.Error = structs.MemberFailed, err.Error()
				return
			}
			c.learn(&si)
			m.Status, m.HTTPAddr, m.AgentAddr, m.LastIndex = structs.MemberAlive, si.HTTPAddr, si.AgentAddr, si.AppliedIndex
		}()
	}
	wg.Wait()
	return out, nil
}
