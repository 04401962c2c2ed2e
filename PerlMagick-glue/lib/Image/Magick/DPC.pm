package Image::Magick::DPC;

# Image::Magick::DPC: magick-dpc from Perl.  The cache: settings go into
# MagickCore's image registry (DPC.xs), where the drop-in libMagickCore and
# the shm: coder read them; images are published and attached through the
# shm: coder with Image::Magick's own Write and Read; names, removal and a
# server's status come from the magick-dpc program, whose JSON is decoded
# and whose errors become croaks naming the cause and the fix.

use strict;
use warnings;
use Carp qw(croak);
use Exporter qw(import);
use IO::Select;
use IPC::Open3 qw(open3);
use JSON::PP ();
use Symbol qw(gensym);
use Image::Magick ();    # first: it starts MagickCore, whose registry we use
use Image::Magick::DPC::Build ();

our $VERSION = '0.1.0';
our @EXPORT_OK = qw(configure settings library publish attach names remove
    status);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

require XSLoader;
XSLoader::load('Image::Magick::DPC', $VERSION);

# configure's keys and the registry entries they set.
my %REGISTRY_KEY = (
    hosts       => 'cache:hosts',
    tiers       => 'cache:tiers',
    tile_cache  => 'cache:dpc-tile-cache',
    tile        => 'cache:dpc-tile',
    replicas    => 'cache:dpc-replicas',
    timeout     => 'cache:dpc-timeout',
    socket      => 'cache:dpc-socket',
    server_user => 'cache:dpc-server-user',
    tls         => 'cache:dpc-tls',
    tls_ca      => 'cache:dpc-tls-ca',
    tls_cert    => 'cache:dpc-tls-cert',
    tls_key     => 'cache:dpc-tls-key',
);

# The module's own settings: the magick-dpc program and the coder directory.
my %module = (program => undef, coders => undef);
my $coder_ready = 0;
my $CLI_TIMEOUT = 60;    # seconds any magick-dpc command may take

sub configure {
    my (%set) = @_;
    for my $key (sort keys %set) {
        if (exists $module{$key}) {
            $module{$key} = $set{$key};
            $coder_ready = 0 if $key eq 'coders';
            next;
        }
        my $entry = $REGISTRY_KEY{$key}
            or croak "Image::Magick::DPC::configure: unknown setting '$key' "
            . '(known: ' . join(', ', sort keys %REGISTRY_KEY, keys %module)
            . ')';
        _registry_put($entry, $set{$key});
    }
    return;
}

sub _registry_put {
    my ($entry, $value) = @_;
    if (!defined $value) {
        _registry_delete($entry);
        return;
    }
    $value = join ',', @$value if ref $value eq 'ARRAY';
    croak "Image::Magick::DPC::configure: $entry: a string or a list, "
        . 'not ' . ref($value) if ref $value;
    _registry_set($entry, "$value");
    return;
}

sub settings {
    my %now;
    for my $key (keys %REGISTRY_KEY) {
        my $value = _registry_get($REGISTRY_KEY{$key});
        $now{$key} = $value if defined $value;
    }
    $now{program} = _program();
    $now{coders} = _coder_dir();
    return \%now;
}

sub library {
    return _library();
}

sub publish {
    my ($image, $name, %opt) = @_;
    croak 'Image::Magick::DPC::publish: the image must be an Image::Magick '
        . 'object holding at least one frame'
        unless ref $image && eval { $image->isa('Image::Magick') } && @$image;
    _check_name('publish', $name);
    _ensure_coder('publish');
    my @extra = _coder_options(\%opt);
    push @extra, 'shm:ttl' => $opt{ttl} if defined $opt{ttl};
    # A clone shares the pixels; Write renames every frame it writes.
    my $copy = $image->Clone();
    my $err = $copy->Write(filename => "shm:$name", @extra);
    _croak_on_error('publish', $err);
    return $name;
}

sub attach {
    my ($name, %opt) = @_;
    _check_name('attach', $name);
    _ensure_coder('attach');
    my $image = Image::Magick->new();
    my $spec = defined $opt{owner} ? "$opt{owner}/$name" : $name;
    my @extra = _coder_options(\%opt);
    $image->Set(@extra) if @extra;
    my $err = $image->Read("shm:$spec");
    _croak_on_error('attach', $err);
    croak "Image::Magick::DPC::attach: shm:$spec gave no image" unless @$image;
    return $image;
}

sub names {
    my (%opt) = @_;
    return @{ _run_json('names', \%opt, 'shm', 'ls', _socket_args(\%opt)) };
}

sub remove {
    my ($name, %opt) = @_;
    _check_name('remove', $name);
    my @owner = defined $opt{owner} ? ('--owner', $opt{owner}) : ();
    _run('remove', \%opt, 'shm', 'rm', $name, @owner, _socket_args(\%opt));
    return 1;
}

sub status {
    my (%opt) = @_;
    my @args = ('status');
    if (defined $opt{host}) {
        push @args, '--host', $opt{host};
        push @args, '--timeout', $opt{timeout} if defined $opt{timeout};
    } else {
        my @socket = _socket_args(\%opt);
        push @args, @socket ? @socket : '--local';
    }
    return _run_json('status', \%opt, @args);
}

# Names as the server takes them: no owner part, no path.
sub _check_name {
    my ($what, $name) = @_;
    croak "Image::Magick::DPC::$what: a name is needed" unless defined $name
        && length $name;
    croak "Image::Magick::DPC::$what: bad name '$name' (letters, digits, "
        . "'.', '_' and '-', not first a '.'; the owner goes in owner => ...)"
        unless $name =~ /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
    return;
}

# Per-call settings for the coder, as a -define would give them.
sub _coder_options {
    my ($opt) = @_;
    my @extra;
    push @extra, 'cache:dpc-socket' => $opt->{socket} if defined $opt->{socket};
    push @extra, 'cache:dpc-server-user' => $opt->{server_user}
        if defined $opt->{server_user};
    return @extra;
}

# --socket for the program: the call's, else the registry's (configure).
sub _socket_args {
    my ($opt) = @_;
    my $socket = $opt->{socket} // _registry_get('cache:dpc-socket');
    return defined $socket && length $socket ? ('--socket', $socket) : ();
}

sub _program {
    return $module{program} // $ENV{MAGICK_DPC}
        // $Image::Magick::DPC::Build::MAGICK_DPC;
}

sub _coder_dir {
    my $dir = $module{coders} // $ENV{MAGICK_DPC_CODERS}
        // $Image::Magick::DPC::Build::CODERS;
    return defined $dir && length $dir ? $dir : undef;
}

sub _coder_found {
    my ($adjoin) = Image::Magick->QueryFormat('shm');
    return defined $adjoin;
}

# The shm: coder, found where ImageMagick looks, else in the coder
# directory, put before ImageMagick's path (MAGICK_CODER_MODULE_PATH
# replaces the system's coder path, so that goes after it; MagickCore reads
# the variable whenever it looks for a coder not yet loaded).
sub _ensure_coder {
    my ($what) = @_;
    return if $coder_ready || _coder_found();
    my $dir = _coder_dir();
    croak "Image::Magick::DPC::$what: the shm: coder is not installed where "
        . 'ImageMagick looks, and no coder directory is set (configure('
        . 'coders => DIR) or MAGICK_DPC_CODERS, the directory of shm.la)'
        unless defined $dir;
    croak "Image::Magick::DPC::$what: no shm: coder in $dir (shm.la and "
        . 'shm.so; set configure(coders => DIR) or MAGICK_DPC_CODERS)'
        unless -f "$dir/shm.la";
    my $path = $ENV{MAGICK_CODER_MODULE_PATH} // _system_coder_path();
    $ENV{MAGICK_CODER_MODULE_PATH} = "$dir:$path";
    croak "Image::Magick::DPC::$what: ImageMagick cannot load the shm: coder "
        . "from $dir (built for another ImageMagick?)" unless _coder_found();
    $coder_ready = 1;
    return;
}

# Image::Magick returns an exception string; 400 and above are errors.
sub _croak_on_error {
    my ($what, $err) = @_;
    return unless $err;
    my ($code) = $err =~ /^Exception (\d+)/;
    return if defined $code && $code < 400;
    croak "Image::Magick::DPC::$what: " . _cause($err);
}

# What went wrong, and the fix, from magick-dpc's or the coder's words.
my @CAUSES = (
    [ qr/cannot connect to magick-dpc at (\S+?): ([^(]*?) \(/,
      sub { "no magick-dpc server at socket $1 ($2): start "
            . "'magick-dpc serve --socket $1', or name the server's socket "
            . 'with configure(socket => PATH) or socket => PATH' } ],
    [ qr/(\S+:\d+): (Connection refused|no answer in time[^)]*\))/,
      sub { "no magick-dpc server at $1 ($2): start 'magick-dpc serve "
            . "--listen $1' there, or check the host and port" } ],
    [ qr/(\S+:\d+): .*authentication failed/,
      sub { "wrong secret: $1 refused our proof of the shared secret; "
            . 'cache:shared-secret in the policy.xml this process reads '
            . '(MAGICK_CONFIGURE_PATH) must be the same as the server\'s' } ],
    [ qr/(no shared secret is configured|cache:shared-secret is [^.]*)/,
      sub { "$1: set cache:shared-secret in the policy.xml this process "
            . 'reads (MAGICK_CONFIGURE_PATH), the same as the server\'s '
            . '(openssl rand -base64 32)' } ],
    [ qr/out of shared memory: (.*?)(?:\s+@ [^@]*)?$/s,
      sub { "shared-memory budget spent: $1; remove names no longer "
            . 'needed (Image::Magick::DPC::remove) or raise the server '
            . 'limit named in parentheses' } ],
    [ qr/(no image named '[^']*' published by uid \d+)/,
      sub { "$1 (Image::Magick::DPC::names lists the published ones)" } ],
);

sub _cause {
    my ($text) = @_;
    $text =~ s/\s+\z//;
    for my $cause (@CAUSES) {
        my ($re, $say) = @$cause;
        return $say->() if $text =~ $re;
    }
    $text =~ s/^magick-dpc: //;
    $text =~ s/\n/ /g;
    return $text;
}

sub _run_json {
    my ($what, $opt, @args) = @_;
    my $out = _run($what, $opt, @args);
    my $data = eval { JSON::PP->new->decode($out) };
    croak "Image::Magick::DPC::$what: magick-dpc printed no JSON: $out"
        unless defined $data;
    return $data;
}

# Runs the magick-dpc program with ARGS (never a secret: it reads
# policy.xml itself), bounded by $CLI_TIMEOUT; returns its output, or
# croaks with the cause it gave.
sub _run {
    my ($what, $opt, @args) = @_;
    my $program = $opt->{program} // _program();
    my ($out, $err) = (gensym, gensym);
    my $pid = eval { open3(my $in, $out, $err, $program, @args) };
    croak "Image::Magick::DPC::$what: cannot run $program ($@); set "
        . 'configure(program => PATH) or MAGICK_DPC' unless defined $pid;
    my ($stdout, $stderr) = _collect($pid, $out, $err);
    waitpid $pid, 0;
    my $rc = $? >> 8;
    return $stdout if $? == 0;
    $stderr = "exited with status $rc" unless length $stderr;
    croak "Image::Magick::DPC::$what: " . _cause($stderr);
}

sub _collect {
    my ($pid, $out, $err) = @_;
    my %text = ($out => '', $err => '');
    my $select = IO::Select->new($out, $err);
    my $deadline = time + $CLI_TIMEOUT;
    while ($select->count) {
        my $left = $deadline - time;
        my @ready = $left > 0 ? $select->can_read($left) : ();
        if (!@ready) {
            kill 'KILL', $pid;
            waitpid $pid, 0;
            croak 'Image::Magick::DPC: magick-dpc gave no answer in '
                . "$CLI_TIMEOUT s";
        }
        for my $fh (@ready) {
            my $n = sysread $fh, my $buf, 65536;
            if ($n) { $text{$fh} .= $buf } else { $select->remove($fh) }
        }
    }
    return ($text{$out}, $text{$err});
}

1;
__END__

=head1 NAME

Image::Magick::DPC - magick-dpc's pixel cache tiers and shared-memory images from PerlMagick

=head1 SYNOPSIS

  use Image::Magick;
  use Image::Magick::DPC qw(:all);

  # What -define cache:... does on the command line, for the whole process.
  configure(hosts => ['10.0.0.5:6668', '10.0.0.6:6668'],
            tiers => 'memory,distributed,disk', tile_cache => '64MiB');

  my $image = Image::Magick->new;
  $image->Read('in.png');
  publish($image, 'stage1', ttl => '10m');     # shm:stage1
  my $copy = attach('stage1');                 # an Image::Magick object
  print "$_->{name} $_->{bytes}\n" for names();
  remove('stage1');

  my $status = status(host => '127.0.0.1:6668');   # the secret: policy.xml
  print "$status->{requests_served} requests\n";
  print "$status->{shm}{used} bytes of shared memory in use\n";

=head1 DESCRIPTION

Image::Magick::DPC lets a PerlMagick program (Debian's
C<libimage-magick-perl>, unchanged) choose where its pixel caches go on
magick-dpc servers, hand images to other processes through shared memory,
and read a server's status.

The cache settings are put in MagickCore's image registry, which the drop-in
libMagickCore consults for every new pixel cache after the image's own
C<-define> and before policy.xml, as C<-define registry:cache:...> does on
the command line.  So they take effect for every image made after the call,
in the whole process.  The tiers (C<shm>, the native distributed tier, the
tile cache) need the drop-in libMagickCore: start the program with
C<LD_LIBRARY_PATH> naming the directory that holds it
(C<PREFIX/lib>); C<library> says which library was loaded.  On the stock
library only C<hosts> has an effect, the stock way (with C<memory>, C<map>
and C<disk> limits of 0).

Publishing and attaching go through the C<shm:> coder, which works on both
libraries (on the stock one it copies the pixels once).  Names, removal and
status run the C<magick-dpc> program and decode its JSON.

Every failure is a C<croak> naming the function, the cause and the fix.

=head1 FUNCTIONS

Nothing is exported by default; import names or C<:all>.

=head2 configure(KEY => VALUE, ...)

Sets process-wide settings; C<undef> removes one (the image's C<-define>
and policy.xml apply again).  Registry settings, each the C<cache:> setting
of the same meaning (see "The drop-in libMagickCore" in magick-dpc's README):

  hosts        cache:hosts            'HOST:PORT,...' or an array reference
  tiers        cache:tiers            e.g. 'shm,memory,disk' or ['distributed']
  tile_cache   cache:dpc-tile-cache   e.g. '64MiB'
  tile         cache:dpc-tile         e.g. '32x32'
  replicas     cache:dpc-replicas     copies of each tile
  timeout      cache:dpc-timeout      seconds
  socket       cache:dpc-socket       the local server's Unix socket
  server_user  cache:dpc-server-user  the user the local server may run as
  tls, tls_ca, tls_cert, tls_key      cache:dpc-tls, -tls-ca, -tls-cert, -tls-key

C<socket> also applies to C<publish>, C<attach>, C<names>, C<remove> and
C<status> without C<host>.  The module's own settings:

  program      the magick-dpc program (default: MAGICK_DPC, else the one
               installed with this module)
  coders       the directory holding the shm: coder (default:
               MAGICK_DPC_CODERS, else the one installed with this module)

An unknown key croaks.

=head2 settings()

A hash reference of what C<configure> has set (by its keys), with the
C<program> and C<coders> in use.

=head2 library()

The path of the libMagickCore this process loaded, e.g. to check it is the
drop-in one.

=head2 publish(IMAGE, NAME, ttl => DURATION, socket => PATH)

Publishes the Image::Magick object IMAGE (every frame) as C<shm:NAME>, for
C<attach> or C<convert shm:NAME>, replacing an image already published
under NAME by the same user.  C<ttl> is its time to live (C<30s>, C<10m>,
C<1h>); the server caps it (C<--shm-name-lifetime>).  IMAGE is not changed.
Returns NAME.

=head2 attach(NAME, owner => USER, socket => PATH)

Returns a new Image::Magick object holding the image published as NAME, by
this user or by C<owner> (a user name or uid).  On the drop-in library the
pixels are mapped, not copied.

=head2 names(socket => PATH)

The published images this user may read: a list of hash references with
C<owner> (uid), C<name>, C<bytes> and C<ttl_seconds>.

=head2 remove(NAME, owner => UID, socket => PATH)

Removes a published name (C<magick-dpc shm rm>).  Readers that attached it
keep their copy.

=head2 status(host => 'HOST:PORT', timeout => DURATION), status(socket => PATH)

A server's status as a hash reference (the JSON of C<magick-dpc status>).
With C<host>, over TCP, authenticated with the shared secret of the
policy.xml this process reads (C<MAGICK_CONFIGURE_PATH>): C<caches_open>,
C<requests_served>, C<bytes_ram>, ..., and C<shm>.  Without, over the local
socket (C<socket>, else the configured one, else policy.xml's
C<cache:dpc-socket>, else the default): the shared-memory tier's budget,
C<used>, C<peak>, C<names> and its C<holders>.

=head1 ERRORS

Each function croaks with C<Image::Magick::DPC::FUNCTION: CAUSE>, e.g.

  no magick-dpc server at socket /run/user/1000/magick-dpc.sock (No such
    file or directory): start 'magick-dpc serve --socket ...', or name the
    server's socket with configure(socket => PATH) or socket => PATH
  no magick-dpc server at 127.0.0.1:6668 (Connection refused): ...
  wrong secret: 127.0.0.1:6668 refused our proof of the shared secret;
    cache:shared-secret in the policy.xml this process reads ...
  shared-memory budget spent: too many names (1 of uid 1000
    (dpc-shm-uid-names), 1 in all); remove names no longer needed ...
  no image named 'stage1' published by uid 1000 (... names lists ...)

Other errors carry ImageMagick's or magick-dpc's own text.  The secret is
never passed on a command line nor shown in a message.

=head1 ENVIRONMENT

=over

=item MAGICK_DPC

The magick-dpc program, unless configure(program => ...) names one.

=item MAGICK_DPC_CODERS

The directory of the shm: coder, unless configure(coders => ...) names one.
It is used only when ImageMagick does not find the coder itself: then it is
put before C<MAGICK_CODER_MODULE_PATH> (set to it and the system's coder
directory when unset).

=item MAGICK_CONFIGURE_PATH

Where ImageMagick and magick-dpc find policy.xml, with the shared secret.

=item LD_LIBRARY_PATH

Set before perl starts to load the drop-in libMagickCore.

=back

=head1 SEE ALSO

L<Image::Magick>, magick-dpc(1), magick-dpc-policy(5)

=cut
