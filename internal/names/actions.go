package names

// The polkit actions of the API (API.md, "Authorization"): the one table
// the service, its refusals, the policy file's test and the manual follow.
const (
	ActionCreateTap             = "org.netgrant.create-tap"
	ActionUseNetwork            = "org.netgrant.use-network"
	ActionAttachBridge          = "org.netgrant.attach-bridge"
	ActionCreateNATNetwork      = "org.netgrant.create-nat-network"
	ActionPersist               = "org.netgrant.persist"
	ActionManage                = "org.netgrant.manage"
	ActionForwardPort           = "org.netgrant.forward-port"
	ActionForwardPrivilegedPort = "org.netgrant.forward-privileged-port"
)

// Action is one polkit action: what it lets a caller do, in the words a
// refusal uses ("not authorized to <Does>"), and polkit's defaults for
// any subject, an inactive session and an active one.
type Action struct {
	ID       string
	Does     string
	Defaults [3]string
}

// Actions are every action of the API.
var Actions = []Action{
	{ActionCreateTap, "create a tap device", [3]string{"auth_admin", "auth_admin", "yes"}},
	{ActionUseNetwork, "attach a tap to this network", [3]string{"auth_admin", "auth_admin", "yes"}},
	{ActionAttachBridge, "attach a tap to this host bridge", [3]string{"auth_admin", "auth_admin_keep", "auth_admin_keep"}},
	{ActionCreateNATNetwork, "create a NAT network", [3]string{"auth_admin", "auth_admin", "yes"}},
	{ActionPersist, "keep a network until it is deleted", [3]string{"auth_admin", "auth_admin_keep", "yes"}},
	{ActionManage, "manage another user's objects", [3]string{"auth_admin_keep", "auth_admin_keep", "auth_admin_keep"}},
	{ActionForwardPort, "forward a host port to a guest", [3]string{"auth_admin", "auth_admin", "yes"}},
	{ActionForwardPrivilegedPort, "forward a host port below 1024 to a guest", [3]string{"auth_admin_keep", "auth_admin_keep", "auth_admin_keep"}},
}

// ActionDoes is what action lets a caller do; the action's id for one
// not in Actions.
func ActionDoes(action string) string {
	for _, a := range Actions {
		if a.ID == action {
			return a.Does
		}
	}
	return action
}
