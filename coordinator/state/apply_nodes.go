package state

import (
	"fmt"

	"github.com/strata-run/strata/coordinator/structs"
)

// apply writes the node as its agent registered it. Re-registering keeps
// the operator's decisions: a drain in progress and ineligibility.
func (c *NodeRegister) apply(b *batch) (any, error) {
	if c.Node.ID == "" {
		return nil, refuse("state: node register without a node ID")
	}
	nodes := b.tx.Bucket(bucketNodes)
	var rec structs.NodeRecord
	ok, err := getJSON(nodes, []byte(c.Node.ID), &rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		rec.CreateIndex = b.index
	}
	eligible := rec.Eligible || !ok
	if ok && rec.Address != c.Node.Address {
		b.nodeMoved(c.Node.ID)
	}
	rec.Node, rec.LastRegister, rec.ModifyIndex = c.Node, c.Time, b.index
	if ok {
		rec.Eligible = eligible && rec.Drain == nil
	}
	b.nodeChanged(&rec)
	b.fx.Capacity = true
	return nil, putJSON(nodes, []byte(c.Node.ID), &rec)
}

// apply sets the node's status and its allocations' client statuses, and
// writes the evaluations that follow. An unknown node is refused.
func (c *NodeStatus) apply(b *batch) (any, error) {
	for _, e := range c.Evals {
		if e == nil || e.ID == "" {
			return nil, refuse("state: node status with an evaluation without an ID")
		}
	}
	if err := b.updateNode(c.NodeID, func(rec *structs.NodeRecord) { rec.Status = c.Status }); err != nil {
		return nil, err
	}
	if err := b.clientUpdates(c.NodeID, c.Time, c.Allocs); err != nil {
		return nil, err
	}
	for _, e := range c.Evals {
		if err := b.eval(e); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// apply starts or ends the node's drain. An unknown node is refused.
func (c *NodeDrain) apply(b *batch) (any, error) {
	if err := b.updateNode(c.NodeID, func(rec *structs.NodeRecord) { rec.Drain, rec.Eligible = c.Drain, c.Eligible }); err != nil {
		return nil, err
	}
	b.fx.Capacity = b.fx.Capacity || c.Eligible
	return nil, nil
}

// updateNode changes an existing node record; a node that does not exist
// is refused before anything is written.
func (b *batch) updateNode(id string, change func(*structs.NodeRecord)) error {
	nodes := b.tx.Bucket(bucketNodes)
	var rec structs.NodeRecord
	ok, err := getJSON(nodes, []byte(id), &rec)
	if err != nil {
		return err
	}
	if !ok {
		return &refusal{fmt.Errorf("node %q: %w", id, ErrNotFound)}
	}
	change(&rec)
	rec.ModifyIndex = b.index
	b.nodeChanged(&rec)
	return putJSON(nodes, []byte(id), &rec)
}
