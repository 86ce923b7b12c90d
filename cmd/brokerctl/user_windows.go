package main

import "golang.org/x/sys/windows"

// currentUser is this user as the broker reports process owners: the SID,
// or "" when it cannot be read (then --fix stops nothing).
func currentUser() string {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return ""
	}
	return u.User.Sid.String()
}
