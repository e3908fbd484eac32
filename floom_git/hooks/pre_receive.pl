# The pre-receive hook as Perl (the server writes it into its hooks folder with perl's path as
# the shebang): the same client, speaking the same protocol, as pre_receive.py, which documents
# it. Perl without modules starts in about 2 ms where Python needs 10-15 ms, and a push waits for
# its hook, so this is the hook wherever perl is installed (git's own Debian package needs it).
# No `use`: every module costs start-up time; the server fills in its socket constants (@NAME@).
$SIG{PIPE} = 'IGNORE';  # a server gone mid-request is an error below, not a silent death

sub refuse {
    print STDERR "push rejected: the server could not check this push ($_[0]); "
        . "nothing was changed on the server\n";
    exit 1;
}

my $path = $ENV{FLOOM_HOOK_SOCKET};
my $push = $ENV{FLOOM_PUSH_ID};
refuse("no validator is named: FLOOM_HOOK_SOCKET and FLOOM_PUSH_ID are unset")
    unless defined $path && defined $push && $path ne '' && $push ne '';
# git may name the quarantine relative to the .git folder it runs the hook in; the server
# resolves a relative one there.
my $quarantine = $ENV{GIT_QUARANTINE_PATH} // '';
my $updates = do { local $/; <STDIN> } // '';
my $address = $path;
if (length($path) >= 100) {  # past what a socket address may hold (107 bytes)
    my $cut = rindex($path, '/');
    chdir(substr($path, 0, $cut)) or refuse("cannot enter the socket's folder: $!");
    $address = substr($path, $cut + 1);
}
socket(my $sock, @AF_UNIX@, @SOCK_STREAM@, 0) or refuse("socket: $!");
connect($sock, pack('S', @AF_UNIX@) . $address) or refuse("cannot connect to $path: $!");
my $data = "floom-pre-receive 1\npush $push\nquarantine $quarantine\n\n" . $updates;
while (length $data) {
    my $sent = syswrite($sock, $data);
    defined $sent or refuse("cannot send the request: $!");
    substr($data, 0, $sent) = '';
}
shutdown($sock, @SHUT_WR@) or refuse("cannot end the request: $!");
my $answer = '';
while (1) {
    my $got = sysread($sock, $answer, 65536, length $answer);
    defined $got or refuse("cannot read the answer: $!");
    last unless $got;
}
my ($verdict, $text) = split(/\n/, $answer, 2);
print STDERR $text if defined $text;
exit 0 if defined $verdict && $verdict eq 'ok';
print STDERR "push rejected: the server gave no answer about this push; "
    . "nothing was changed on the server\n"
    unless defined $verdict && $verdict eq 'refused';
exit 1;
