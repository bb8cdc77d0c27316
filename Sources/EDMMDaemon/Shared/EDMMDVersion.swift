import EDMMVersion

/// edmmd's version, as HELLO and STATUS report it: the repository's VERSION.
public enum EDMMDVersion {
    public static let string = EDMMVersion.release
}
