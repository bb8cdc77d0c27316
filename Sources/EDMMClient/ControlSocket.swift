import Glibc

/// Where edmmd's control socket is, for every program that connects to it (edmmctl, edmm-sim,
/// libedmm's C hosts): `$EDMMD_SOCKET` when set and not empty, else `/run/edmmd/control.sock`.
public enum ControlSocket {
    public static let defaultPath = "/run/edmmd/control.sock"

    public static var fromEnvironment: String {
        guard let value = getenv("EDMMD_SOCKET"), value.pointee != 0 else { return defaultPath }
        return String(cString: value)
    }
}
