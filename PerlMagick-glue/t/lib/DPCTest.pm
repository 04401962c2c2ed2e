package DPCTest;

# What the t/ tests share: a private directory with a policy.xml holding a
# generated secret (MAGICK_CONFIGURE_PATH points at it before ImageMagick
# starts, so `use DPCTest` comes first), and real magick-dpc servers on
# 127.0.0.1 port 0 with their own Unix socket there, killed at exit.
#
# MAGICK_DPC names the server program (default: the module's); DROPIN_LIB
# the directory of the drop-in libMagickCore the tier tests expect perl to
# have loaded (through LD_LIBRARY_PATH).

use strict;
use warnings;
use Exporter qw(import);
use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

our @EXPORT = qw(work_dir secret write_policy start_server stop_server
    free_port same_pixels test_image server_program);

my $WORK = tempdir('dpc-perl-test.XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $SECRET = random_secret();
my @servers;

write_policy("$WORK/etc", $SECRET);
$ENV{MAGICK_CONFIGURE_PATH} = "$WORK/etc";

sub work_dir { return $WORK }
sub secret { return $SECRET }

sub random_secret {
    open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!\n";
    read($fh, my $bytes, 24) == 24 or die "/dev/urandom: short read\n";
    (my $s = encode_base64($bytes, '')) =~ tr{+/=}{}d;
    return $s;
}

# write_policy(DIR, SECRET): DIR/policy.xml with the secret.
sub write_policy {
    my ($dir, $secret) = @_;
    mkdir $dir;
    open my $fh, '>', "$dir/policy.xml" or die "$dir/policy.xml: $!\n";
    print {$fh} "<policymap>\n  <policy domain=\"cache\" ",
        "name=\"shared-secret\" value=\"$secret\" stealth=\"true\"/>\n",
        "</policymap>\n";
    close $fh or die "$dir/policy.xml: $!\n";
    return $dir;
}

sub server_program {
    require Image::Magick::DPC::Build;
    return $ENV{MAGICK_DPC} // $Image::Magick::DPC::Build::MAGICK_DPC;
}

# start_server(NAME, ARGS...): magick-dpc serve on 127.0.0.1:0 and on
# WORK/NAME.sock with ARGS; returns { pid, port, socket, log } once it
# logged that it listens (10 s at most), or dies with its log.
sub start_server {
    my ($name, @args) = @_;
    my $server = { socket => "$WORK/$name.sock", log => "$WORK/$name.log" };
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        open STDERR, '>', $server->{log} or die "$server->{log}: $!\n";
        open STDOUT, '>', '/dev/null' or die "/dev/null: $!\n";
        { exec server_program(), 'serve', '--listen', '127.0.0.1:0',
            '--socket', $server->{socket}, @args; }
        print STDERR "exec magick-dpc: $!\n";
        POSIX::_exit(127);    # not exit: END would remove WORK
    }
    $server->{pid} = $pid;
    push @servers, $server;
    $server->{port} = wait_port($server);
    return $server;
}

sub wait_port {
    my ($server) = @_;
    my $deadline = time + 10;
    while (time < $deadline) {
        my $log = slurp($server->{log});
        my ($port) = $log =~ /listening on 127\.0\.0\.1:(\d+)/;
        return $port if $port && $log =~ /listening on \Q$server->{socket}\E/;
        last if waitpid($server->{pid}, 1) == $server->{pid};
        sleep 0.05;
    }
    die "magick-dpc did not start:\n" . slurp($server->{log});
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return scalar <$fh>;
}

# stop_server(SERVER): SIGTERM, then SIGKILL after 10 s; its exit status.
sub stop_server {
    my ($server) = @_;
    return undef unless $server->{pid};
    kill 'TERM', $server->{pid};
    my $deadline = time + 10;
    while (time < $deadline) {
        if (waitpid($server->{pid}, 1) == $server->{pid}) {
            delete $server->{pid};
            return $? >> 8;
        }
        sleep 0.05;
    }
    kill 'KILL', $server->{pid};
    waitpid $server->{pid}, 0;
    delete $server->{pid};
    return -1;
}

# free_port(): a loopback port nothing listens on.
sub free_port {
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 1) or die "socket: $!\n";
    my $port = $sock->sockport;
    close $sock;
    return $port;
}

# test_image(): a 160x120 swirled rose, the same in every run, of depth 16
# (a MIFF file keeps every bit).
sub test_image {
    require Image::Magick;
    my $image = Image::Magick->new(size => '160x120');
    my $err = $image->Read('rose:') || $image->Resize(geometry => '160x120!')
        || $image->Swirl(degrees => 60) || $image->Set(depth => 16);
    die "test image: $err\n" if $err;
    return $image;
}

# same_pixels(A, B): Image::Magick images with the same pixels (AE = 0).
sub same_pixels {
    my ($a, $b) = @_;
    return 0 unless $a->Get('width') == $b->Get('width')
        && $a->Get('height') == $b->Get('height');
    my $diff = $a->Compare(image => $b, metric => 'AE');
    return 0 unless ref $diff;
    return $diff->Get('error') == 0;
}

END {
    local $?;    # the test's exit status
    kill 'KILL', $_->{pid} for grep { $_->{pid} } @servers;
    waitpid $_->{pid}, 0 for grep { $_->{pid} } @servers;
}

1;
