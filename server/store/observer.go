package store

// Observer is told of every stored change that has effects beyond the store (open sockets to
// tell, sessions to close), after the change is committed. Its methods are called in the
// goroutine that made the change, once its transaction has committed and bbolt's lock is
// released, in commit order for that goroutine; they must not block for long, and may read the
// store. A cluster node applies the changes of every node to its copy, so its Observer hears
// of them all, not only of those asked of it.
type Observer interface {
	// Appended: AppendBatch committed. results are all of the batch's, in order, refusals
	// (Err) and duplicates (Dup) included.
	Appended(results []AppendResult)
	// ReadMoved: SetRead set the user's read marker of a room to seq (also when it stayed
	// where it was). A send moves its sender's marker too: that is AppendResult.Read.
	ReadMoved(userID, room string, seq uint64)
	// MembershipChanged: users became or stopped being members of a room (AddMember,
	// RemoveMember, NewRoom, DM when created). userIDs are those to tell, read in the change's
	// transaction: the users concerned and, in a room with a member list (private, dm), every
	// member.
	MembershipChanged(room string, userIDs []string)
	// RoomDeleted: DeleteRoom deleted the room.
	RoomDeleted(room string)
	// SessionsRevoked: the sessions were revoked (UpdateSession, SwapSession,
	// RevokeUserSessions, SetUserDisabled).
	SessionsRevoked(ids []string)
}

// SetObserver sets the Observer of the store and of its views (At); nil means nobody. Set it
// before the store is used: changes committed before are told to nobody.
func (s *Store) SetObserver(o Observer) {
	if o == nil {
		s.sh.obs.Store(nil)
		return
	}
	s.sh.obs.Store(&o)
}

// observer returns the Observer, or nil.
func (s *Store) observer() Observer {
	if o := s.sh.obs.Load(); o != nil {
		return *o
	}
	return nil
}
