package sandbox

import (
	"cmp"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
)

// metaExternalID is the metadata entry the Onfleet adapter stores the order's external id in;
// the store indexes it so lookups and the per-order counts stay cheap.
const metaExternalID = "waybill_external_id"

const shardCount = 64

// store keeps tasks in memory, sharded so concurrent creates rarely share a lock.
type store struct {
	seed   maphash.Seed
	tasks  [shardCount]taskShard
	byExt  [shardCount]extShard
	stored atomic.Int64  // tasks created
	seq    atomic.Uint64 // the last creation sequence number given
	extIDs atomic.Int64  // distinct external ids with at least one task
	dupIDs atomic.Int64  // external ids with more than one task
}

type taskShard struct {
	mu sync.RWMutex
	m  map[string]*Task
}

type extShard struct {
	mu sync.RWMutex
	m  map[string][]string // external id → task ids, in creation order
}

func newStore() *store {
	s := &store{seed: maphash.MakeSeed()}
	for i := range s.tasks {
		s.tasks[i].m = make(map[string]*Task)
		s.byExt[i].m = make(map[string][]string)
	}
	return s
}

func (s *store) shard(key string) int { return int(maphash.String(s.seed, key) % shardCount) }

// externalID returns the task's waybill_external_id, if it has one.
func externalID(t *Task) (string, bool) {
	for _, m := range t.Metadata {
		if m.Name == metaExternalID {
			return m.stringValue()
		}
	}
	return "", false
}

// add stores a new task and indexes its external id.
func (s *store) add(t *Task) {
	t.seq = s.seq.Add(1)
	sh := &s.tasks[s.shard(t.ID)]
	sh.mu.Lock()
	sh.m[t.ID] = t
	sh.mu.Unlock()
	s.stored.Add(1)

	ext, ok := externalID(t)
	if !ok {
		return
	}
	es := &s.byExt[s.shard(ext)]
	es.mu.Lock()
	ids := append(es.m[ext], t.ID)
	es.m[ext] = ids
	es.mu.Unlock()
	switch len(ids) {
	case 1:
		s.extIDs.Add(1)
	case 2:
		s.dupIDs.Add(1)
	}
}

func (s *store) get(id string) (*Task, bool) {
	sh := &s.tasks[s.shard(id)]
	sh.mu.RLock()
	t, ok := sh.m[id]
	sh.mu.RUnlock()
	return t, ok
}

// update replaces a task with change applied to a copy of it, and returns the copy.
func (s *store) update(id string, change func(*Task)) (*Task, bool) {
	sh := &s.tasks[s.shard(id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old, ok := sh.m[id]
	if !ok {
		return nil, false
	}
	t := *old
	change(&t)
	sh.m[id] = &t
	return &t, true
}

// byExternalID returns the tasks carrying the external id, oldest first.
func (s *store) byExternalID(ext string) []*Task {
	es := &s.byExt[s.shard(ext)]
	es.mu.RLock()
	ids := slices.Clone(es.m[ext])
	es.mu.RUnlock()
	tasks := make([]*Task, 0, len(ids))
	for _, id := range ids {
		if t, ok := s.get(id); ok {
			tasks = append(tasks, t)
		}
	}
	return tasks
}

// match returns the tasks whose metadata contain every query entry, oldest first. A query for
// the external id alone uses the index; anything else scans.
func (s *store) match(query []Metadata) []*Task {
	if len(query) == 1 && query[0].Name == metaExternalID {
		if ext, ok := query[0].stringValue(); ok {
			return s.byExternalID(ext)
		}
	}
	var out []*Task
	for i := range s.tasks {
		sh := &s.tasks[i]
		sh.mu.RLock()
		for _, t := range sh.m {
			if matchesAll(t.Metadata, query) {
				out = append(out, t)
			}
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b *Task) int {
		return cmp.Or(cmp.Compare(a.TimeCreated, b.TimeCreated), cmp.Compare(a.seq, b.seq))
	})
	return out
}

func matchesAll(have, query []Metadata) bool {
	if len(query) == 0 {
		return false
	}
	for _, q := range query {
		if !slices.ContainsFunc(have, func(m Metadata) bool { return m.matches(q) }) {
			return false
		}
	}
	return true
}

// duplicated lists the external ids with more than one task, sorted.
func (s *store) duplicated() []string {
	out := []string{}
	for i := range s.byExt {
		es := &s.byExt[i]
		es.mu.RLock()
		for ext, ids := range es.m {
			if len(ids) > 1 {
				out = append(out, ext)
			}
		}
		es.mu.RUnlock()
	}
	slices.Sort(out)
	return out
}

// all returns every task, in no order.
func (s *store) all() []*Task {
	out := make([]*Task, 0, s.stored.Load())
	for i := range s.tasks {
		sh := &s.tasks[i]
		sh.mu.RLock()
		for _, t := range sh.m {
			out = append(out, t)
		}
		sh.mu.RUnlock()
	}
	return out
}
