// Package testuser creates throwaway OS users for tests (Linux, as root).
package testuser
