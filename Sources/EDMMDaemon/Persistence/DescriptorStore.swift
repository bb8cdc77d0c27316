/// Somewhere to keep descriptors across a restart of the daemon: systemd's file-descriptor store
/// (`FileDescriptorStoreMax=`). The store keeps its own copy of each descriptor; the daemon keeps
/// using its own. Stored descriptors come back at the next start next to the socket-activated
/// ones, under their names (`DaemonOptions.storedDescriptors`).
public protocol DescriptorStore: Sendable {
    /// Keeps a copy of `fd` under `name`; false if it could not be handed over.
    func store(_ fd: Int32, name: String) -> Bool
    /// Drops what is stored under `name`.
    func remove(name: String)
}

/// The FD store of the systemd unit that started this process (FDSTORE=1, FDSTOREREMOVE=1).
public struct SystemdDescriptorStore: DescriptorStore {
    public init() {}

    public func store(_ fd: Int32, name: String) -> Bool {
        SDDaemon.notify(["FDSTORE": "1", "FDNAME": name], descriptors: [fd]) > 0
    }

    public func remove(name: String) {
        SDDaemon.notify(["FDSTOREREMOVE": "1", "FDNAME": name])
    }
}
