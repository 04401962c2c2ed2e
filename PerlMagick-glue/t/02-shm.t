# publish, attach, names and remove against a real server's socket: pixel
# identity both ways, with convert on the other side too; the socket set
# only in the image registry (configure), which the shm: coder must read.
use strict;
use warnings;
use lib 't/lib';
use DPCTest;
use Test::More;
use Image::Magick;
use Image::Magick::DPC qw(:all);

my $server = start_server('shm');
my $socket = $server->{socket};
configure(socket => $socket);
my $image = test_image();
my $filename = $image->Get('filename');

is(publish($image, 'perl-one', ttl => '10m'), 'perl-one', 'publish');
my $back = attach('perl-one');
isa_ok($back, 'Image::Magick', 'attach');
ok(same_pixels($image, $back), 'attached pixels are the published ones');
is($back->Get('signature'), $image->Get('signature'), 'same signature');
is($image->Get('filename'), $filename, 'the published image is not renamed');

my ($entry) = grep { $_->{name} eq 'perl-one' } names();
ok($entry, 'names lists it');
is($entry->{owner}, $<, 'owned by us');
ok($entry->{bytes} >= 160 * 120 * 8, 'its size covers the pixels');
ok($entry->{ttl_seconds} > 500 && $entry->{ttl_seconds} <= 600,
    'ttl => 10m reached the server');

my $frames = Image::Magick->new(size => '40x30');
$frames->Read('xc:red', 'xc:lime', 'xc:blue');
publish($frames, 'perl-seq');
my $seq = attach('perl-seq', socket => $socket, owner => $<);
is(scalar @$seq, 3, 'every frame of a sequence, with owner and socket');
ok(same_pixels($seq->[$_], $frames->[$_]), "frame $_ identical") for 0 .. 2;

# convert on the other side, with the socket from its own -define.
my $out = work_dir() . '/from-perl.miff';
is(system('timeout', '60', 'convert', '-define', "cache:dpc-socket=$socket",
    'shm:perl-one', $out), 0, 'convert attaches what Perl published');
my $file = Image::Magick->new;
$file->Read($out);
ok(same_pixels($image, $file), 'convert got the same pixels');
is(system('timeout', '60', 'convert', $out, '-flip', '-define',
    "registry:cache:dpc-socket=$socket", 'shm:from-convert'), 0,
    'convert publishes, its socket only in the image registry');
my $flipped = $image->Clone();
$flipped->Flip();
ok(same_pixels(attach('from-convert'), $flipped),
    'Perl attaches what convert published');

ok(remove('perl-one'), 'remove');
ok(!grep({ $_->{name} eq 'perl-one' } names()), 'gone from names');
eval { attach('perl-one') };
like($@, qr/^Image::Magick::DPC::attach: no image named 'perl-one' published by uid $< /,
    'attach of a removed name croaks, naming it');
eval { remove('perl-one') };
like($@, qr/^Image::Magick::DPC::remove: no image named 'perl-one'/,
    'remove of an unknown name croaks, naming it');
is_deeply([sort map { $_->{name} } names()], [qw(from-convert perl-seq)],
    'the others stay');
is(stop_server($server), 0, 'server stops cleanly');
done_testing();
