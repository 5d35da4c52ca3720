// Package taskertype holds the types shared by every part of Tasker: task and
// step states with their transition tables, the records the store keeps, and
// the sentinel errors. It imports nothing of Tasker's own, so any package may
// import it without a cycle.
package taskertype
