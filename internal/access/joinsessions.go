package access

import (
	"github.com/keyport/keyport/internal/types"
)

// CanJoinSession reports whether holders of roles may join, in mode, a live session of
// kind started by a user holding ownerRoles: some role's allow.join_sessions entry names
// one of ownerRoles (globs and ^regex$ as everywhere in roles), the kind and the mode.
func CanJoinSession(roles []*types.Role, ownerRoles []string, kind, mode string) bool {
	for _, r := range roles {
		for _, j := range r.Spec.Allow.JoinSessions {
			if !listHas(j.Kinds, kind) || !listHas(j.Modes, mode) {
				continue
			}
			for _, v := range j.Roles {
				p, err := compilePattern(v)
				if err != nil {
					continue
				}
				for _, owner := range ownerRoles {
					if p.match(owner) {
						return true
					}
				}
			}
		}
	}
	return false
}

func listHas(list []string, v string) bool {
	for _, x := range list {
		if x == v || x == types.Wildcard {
			return true
		}
	}
	return false
}
