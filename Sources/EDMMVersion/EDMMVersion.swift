/// The release, as the repository's `VERSION` file says (the one place it is written;
/// debian/changelog agrees with it). `BuildInfoPlugin` generates `release` from that file, so
/// only a new VERSION recompiles what imports this module; the commit and date are apart, in
/// `EDMMBuildInfo`, which only the programs import.
public enum EDMMVersion {}
