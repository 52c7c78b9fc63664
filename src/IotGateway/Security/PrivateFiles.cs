namespace IotGateway.Security;

// The gateway's files hold every device's data and its keys: created readable by their owner only (files 600, folders
// 700), whatever the umask. A folder or file that already exists keeps its mode: it may be shared on purpose.
public static class PrivateFiles
{
    private const UnixFileMode OwnerFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerFolder = OwnerFile | UnixFileMode.UserExecute;

    public static void CreateFolder(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
            return;
        }

        // Directory.CreateDirectory applies the mode to each folder it creates (the umask can only narrow it).
        Directory.CreateDirectory(path, OwnerFolder);
    }

    // Opens a new file, or replaces an existing one, with owner-only permissions.
    public static FileStream Create(string path, FileMode mode = FileMode.Create)
    {
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerFile;
        }

        return new FileStream(path, options);
    }

    // An empty file to be filled by someone else (SQLite gives its -wal and -shm files the database file's mode).
    // Best effort: when it cannot be created (a full disk, no access), the one who opens it reports why, and retries.
    public static void Ensure(string path)
    {
        if (File.Exists(path))
        {
            return;
        }

        try
        {
            using var _ = Create(path, FileMode.CreateNew);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Created meanwhile by another process (it keeps its mode), or not creatable now.
        }
    }
}
